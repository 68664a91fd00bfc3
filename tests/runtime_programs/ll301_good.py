"""LBFGS with a closure that zeroes, backpropagates and returns the loss; a counter of evaluations."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=10)
evaluations = 0


def closure():
    global evaluations
    evaluations += 1
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    return loss


for i in range(3):
    optimizer.step(closure)
