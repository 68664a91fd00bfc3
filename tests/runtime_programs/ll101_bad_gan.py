"""A GAN whose generator gradients are never cleared: optG steps on G's gradients of every iteration."""
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
    noise = torch.randn(16, 2)
    fake = netG(noise)
    netD.zero_grad()
    errD = bce(netD(real), torch.ones(16, 1)) + bce(netD(fake.detach()), torch.zeros(16, 1))
    errD.backward()
    optD.step()
    errG = bce(netD(fake), torch.ones(16, 1))
    errG.backward()
    optG.step()  # expect: LL101
