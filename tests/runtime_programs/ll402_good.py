import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
ema = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
probe = torch.nn.Linear(8, 1)
probe_opt = torch.optim.SGD(probe.parameters(), lr=0.1)

for epoch in range(2):
    model.train()
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        ema.eval()
        if i == 1:
            model.eval()
            with torch.no_grad():
                print(sum(torch.nn.functional.mse_loss(model(x), y).item() for x, y in loader))
            model.train()
# a probe trained on features of a frozen model kept in eval mode from the start
model.eval()
for x, y in loader:
    probe_opt.zero_grad()
    with torch.no_grad():
        feats = model[0](x)
    torch.nn.functional.mse_loss(probe(feats), y).backward()
    probe_opt.step()
