# The two commands of the README.
.PHONY: demo test

# set up, train the demo model if no finished run exists, serve the explorer on 127.0.0.1:5006
demo:
	scripts/setup.sh
	.venv/bin/hydrolens up --port 5006 --address 127.0.0.1

# set up (with test tools and chromium) and run the whole test suite
test:
	scripts/setup.sh test
	.venv/bin/python -m pytest -q -p no:cacheprovider
