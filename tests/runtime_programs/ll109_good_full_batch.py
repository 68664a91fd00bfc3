"""Full-batch training: the loss covers every batch's output (concatenated), one backward per epoch."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)

for epoch in range(3):
    def closure():
        optimizer.zero_grad()
        outputs, targets = [], []
        for x, y in loader:
            outputs.append(model(x))
            targets.append(y)
        loss = torch.nn.functional.mse_loss(torch.cat(outputs), torch.cat(targets))
        loss.backward()
        return loss

    optimizer.step(closure)
