"""Warm-up stepped after each optimizer step; StepLR after each epoch; ReduceLROnPlateau after validation."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=len(loader))
decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
head = torch.nn.Linear(4, 1)
head_opt = torch.optim.SGD(head.parameters(), lr=0.1)
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(head_opt, patience=0)

for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        head_opt.zero_grad()
        (torch.nn.functional.mse_loss(model(x), y) + torch.nn.functional.mse_loss(head(x), y)).backward()
        optimizer.step()
        head_opt.step()
        if epoch == 0:
            warmup.step()
    decay.step()
    with torch.no_grad():
        val_loss = sum(torch.nn.functional.mse_loss(head(x), y).item() for x, y in loader)
    plateau.step(val_loss)
