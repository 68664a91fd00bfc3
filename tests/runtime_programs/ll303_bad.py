"""The closure returns a loss computed before it, and never calls backward."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=5)

for i in range(3):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    optimizer.step(lambda: loss)  # expect: LL303
