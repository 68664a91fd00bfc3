"""DCGAN order; the fake batch is not detached, so D's backward also reaches G and G is zeroed before its own."""
import torch
from torch import nn

torch.manual_seed(0)
netG = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
netD = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
optD = torch.optim.Adam(netD.parameters(), lr=1e-3)
optG = torch.optim.Adam(netG.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()
real_data = [torch.randn(16, 2) + 3 for _ in range(6)]

for real in real_data:
    netD.zero_grad()
    errD_real = bce(netD(real), torch.ones(16, 1))
    errD_real.backward()
    fake = netG(torch.randn(16, 2))
    errD_fake = bce(netD(fake), torch.zeros(16, 1))
    errD_fake.backward(retain_graph=True)
    optD.step()
    netG.zero_grad()
    errG = bce(netD(fake), torch.ones(16, 1))
    errG.backward()
    optG.step()
