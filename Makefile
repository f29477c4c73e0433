# The two README commands, plus the pieces they are made of.
.PHONY: demo test setup lint bench-cni bench-storm

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

lint:
	.venv/bin/ruff check vpcnet workers beat tests vpcnet_sim && .venv/bin/mypy && .venv/bin/lint-imports --no-cache

bench-cni:
	.venv/bin/vpcnet bench cni --pods 200

bench-storm:
	.venv/bin/vpcnet bench storm --nodes 100
