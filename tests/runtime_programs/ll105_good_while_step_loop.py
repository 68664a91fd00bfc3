"""A step-counting loop with get_batch (no DataLoader, no epochs), Adam, cosine schedule per step."""
import math

import torch

torch.manual_seed(0)
data = torch.randn(200, 4)
target = data.sum(dim=1, keepdim=True)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
max_steps = 30
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / max_steps)))


def get_batch():
    idx = torch.randint(0, 200, (16,))
    return data[idx], target[idx]


step = 0
while True:
    x, y = get_batch()
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    step += 1
    if step >= max_steps:
        break
