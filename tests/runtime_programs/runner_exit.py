"""Leaves with a non-zero exit status after one step."""
import sys

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
sys.exit(3)
