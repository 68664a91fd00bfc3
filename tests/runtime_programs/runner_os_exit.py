"""Leaves through os._exit(3) after one step, past the recorder: the runner reports exit status 3."""
import os

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
os._exit(3)
