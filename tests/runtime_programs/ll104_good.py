"""The backward runs in a helper that the loop calls before the step."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def compute_gradients(x, y):
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss.item()


for epoch in range(2):
    for x, y in loader:
        optimizer.zero_grad()
        compute_gradients(x, y)
        optimizer.step()
