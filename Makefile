.PHONY: demo test bench
demo: ; ./dev demo
test: ; ./dev test
bench: ; ./dev bench
