"""A backward pass whose gradient is exactly zero (every unit of a ReLU head is dead) before each step: the
step receives a zero gradient, which is a gradient, not one cleared by a zero_grad between backward and step."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=4)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

for epoch in range(2):
    for x, y in loader:
        optimizer.zero_grad()
        out = torch.relu(model(x) - 100.0)
        loss = torch.nn.functional.mse_loss(out, y)
        loss.backward()
        optimizer.step()
