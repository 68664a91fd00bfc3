"""A trainer class with AMP (GradScaler), validation in eval mode, zero_grad(set_to_none=False)."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Trainer:
    def __init__(self):
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.scaler = torch.amp.GradScaler()
        data = TensorDataset(torch.randn(48, 4), torch.randn(48, 1))
        self.train_loader = DataLoader(data, batch_size=8, shuffle=True)
        self.val_loader = DataLoader(data, batch_size=16)

    def train_step(self, x, y):
        self.optimizer.zero_grad(set_to_none=False)
        loss = nn.functional.mse_loss(self.model(x), y)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def fit(self, epochs):
        for epoch in range(epochs):
            self.model.train()
            for x, y in self.train_loader:
                self.train_step(x, y)
            self.model.eval()
            with torch.no_grad():
                val = sum(nn.functional.mse_loss(self.model(x), y).item() for x, y in self.val_loader)
        return val


if __name__ == "__main__":
    torch.manual_seed(0)
    Trainer().fit(3)
