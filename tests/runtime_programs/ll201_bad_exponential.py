"""ExponentialLR stepped per batch inside a helper: lr after epoch e is base * gamma ** (e * len(loader))."""
import torch
from torch.utils.data import DataLoader, TensorDataset


def train(model, loader, optimizer, scheduler):
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()  # expect: LL201


def main():
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(48, 4), torch.randn(48, 1)), batch_size=8)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    for epoch in range(3):
        train(model, loader, optimizer, scheduler)


if __name__ == "__main__":
    main()
