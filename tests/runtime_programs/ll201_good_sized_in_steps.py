"""StepLR sized in iterations (step_size = 2 epochs of batches) stepped per batch; MultiStepLR per epoch."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2 * len(loader), gamma=0.5)
head = torch.nn.Linear(4, 1)
head_opt = torch.optim.SGD(head.parameters(), lr=0.1)
head_sched = torch.optim.lr_scheduler.MultiStepLR(head_opt, milestones=[1, 2], gamma=0.5)

for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        head_opt.zero_grad()
        (torch.nn.functional.mse_loss(model(x), y) + torch.nn.functional.mse_loss(head(x), y)).backward()
        optimizer.step()
        head_opt.step()
        scheduler.step()
    head_sched.step()
