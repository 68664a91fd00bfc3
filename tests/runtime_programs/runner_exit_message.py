"""Leaves with sys.exit("a message") after one step: exit status 1, and the message."""
import sys

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
sys.exit("stopping: the loss is NaN")
