"""Dies of a segmentation fault after one step: the runner reports the signal, not a missing trace."""
import ctypes

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()
ctypes.string_at(0)
