"""A closure that returns None on one path (SGD does not need the value, but step() returns it)."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def closure():  # expect: LL301
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    if loss.item() > 100:
        return loss


for i in range(5):
    optimizer.step(closure)
