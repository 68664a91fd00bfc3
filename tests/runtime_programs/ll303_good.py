"""SGD with a closure that recomputes the loss and backpropagates it (functools.partial)."""
import functools

import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def closure(inputs, targets):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    return loss


for i in range(5):
    optimizer.step(functools.partial(closure, X, Y))
