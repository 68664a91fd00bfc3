"""Forward in the batch loop, backward and step after it: only the last batch trains."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(3):
    for x, y in loader:
        output = model(x)
        loss = torch.nn.functional.mse_loss(output, y)
    optimizer.zero_grad()
    loss.backward()  # expect: LL109
    optimizer.step()
