"""Checks what the runner promises the program: its folder as cwd, its path as argv[0], __main__, seeds,
no CUDA, and a GradScaler that works on the CPU even when built with the cuda default."""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
assert __name__ == "__main__", __name__
assert os.getcwd() == here, (os.getcwd(), here)
assert os.path.abspath(sys.argv[0]) == os.path.abspath(__file__), sys.argv
assert torch.initial_seed() == 0, torch.initial_seed()
assert not torch.cuda.is_available()
for scaler in (torch.amp.GradScaler(), torch.cuda.amp.GradScaler()):
    assert scaler.is_enabled(), "GradScaler disabled itself"
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    optimizer.zero_grad()
    loss = model(torch.randn(4, 2)).pow(2).mean()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
assert scaler.get_scale() > 0
