"""Calls os.abort() after one step: the runner reports SIGABRT."""
import os

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
os.abort()
