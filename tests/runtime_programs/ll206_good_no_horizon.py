import torch

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
other = torch.optim.Adam(model.parameters(), lr=0.01)
x, y = torch.randn(8, 4), torch.randn(8, 1)
for epoch in range(4):
    # rebuilt every epoch, neither restarts: the next rate is the current one times a constant factor
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    for i in range(3):
        shrink = torch.optim.lr_scheduler.MultiplicativeLR(other, lambda step: 0.9)
        optimizer.zero_grad()
        other.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        other.step()
        shrink.step()
    decay.step()
