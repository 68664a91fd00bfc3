"""Each batch is split into micro-batches whose gradients are summed before one step per batch."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(2):
    for x, y in loader:
        optimizer.zero_grad()
        for xc, yc in zip(x.chunk(2), y.chunk(2)):
            loss = torch.nn.functional.mse_loss(model(xc), yc) / 2
            loss.backward()
        optimizer.step()
