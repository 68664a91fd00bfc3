"""looplint rules: one module per rule. Discovered by ``looplint.rule.all_rules``."""
