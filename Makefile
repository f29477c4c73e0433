# The two README commands, plus the pieces they are made of.
.PHONY: demo test setup lint bench-cni bench-storm image image-dev

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

# The images (Dockerfile): runtime is what the manifests and the Helm chart deploy; dev
# adds the vpcnet-sim harness for docker-compose.
image:
	docker build --target runtime -t ghcr.io/vpcnet/vpcnet:0.1.0 .

image-dev:
	docker build --target dev -t ghcr.io/vpcnet/vpcnet-dev:0.1.0 .
