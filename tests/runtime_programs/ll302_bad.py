"""An LBFGS closure without zero_grad: every re-evaluation adds to the previous gradients."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=5)


def closure():  # expect: LL302
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    return loss


for i in range(3):
    optimizer.step(closure)
