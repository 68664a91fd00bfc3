import torch

torch.manual_seed(0)
model = torch.nn.Module()
model.body = torch.nn.Linear(4, 4)
model.head = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)  # expect: LL110
for p in model.parameters():
    p.requires_grad = False  # expect: LL110
for p in model.body.parameters():
    p.requires_grad = True
x, y = torch.randn(8, 4), torch.randn(8, 1)
for step in range(3):
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model.head(model.body(x)), y).backward()
    optimizer.step()
