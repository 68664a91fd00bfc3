"""Crashes in the middle of training: the runner records it and keeps the trace."""
import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(10):
    optimizer.zero_grad()
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    if step == 2:
        raise ValueError("the program's own error")
