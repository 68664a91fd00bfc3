"""Accumulation whose step for the previous 3 batches runs at the top of the next iteration."""
import torch

torch.manual_seed(0)
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(10)]
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

for i, (x, y) in enumerate(batches):
    if i > 0 and i % 3 == 0:
        optimizer.step()
        optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y) / 3
    loss.backward()
