"""An evaluation loop under no_grad, then a full-batch training step on all data."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
loader = DataLoader(TensorDataset(X, Y), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(3):
    with torch.no_grad():
        val = [torch.nn.functional.mse_loss(model(x), y) for x, y in loader]
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    optimizer.step()
