"""Adam rebuilt every epoch over the same model: its moments start from zero each time."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)

for epoch in range(3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: LL107
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
