"""Gradients cleared with ``p.grad = None`` before every backward, on a model that diverges to NaN (one batch
holds a NaN): each step applies only its own backward pass, even when no gradient equals itself."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
inputs = torch.randn(32, 4)
inputs[5, 0] = float("nan")
loader = DataLoader(TensorDataset(inputs, torch.randn(32, 1)), batch_size=4)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(2):
    for x, y in loader:
        for p in model.parameters():
            p.grad = None
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
