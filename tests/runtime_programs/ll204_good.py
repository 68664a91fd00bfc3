"""ReduceLROnPlateau stepped on the validation loss, every other epoch."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=0)

for epoch in range(4):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    if epoch % 2 == 1:
        model.eval()
        with torch.no_grad():
            val_loss = sum(torch.nn.functional.mse_loss(model(x), y).item() for x, y in loader)
        scheduler.step(val_loss)
