"""Hangs after one step (the runner's timeout ends it)."""
import time

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
time.sleep(600)
