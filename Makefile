# MetaSync — the two commands a newcomer needs:
#   make run    installs what is missing, builds, starts `metasync serve` (loads the sample
#               estate on a fresh data directory)
#   make test   installs what is missing, builds (also ASan+UBSan and fuzz builds), runs every test
# Other targets: build, demo, bench, bench-kafka, fuzz, format, docs, clean.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan build-fuzz run demo test bench bench-kafka fuzz format docs clean

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/install-npm-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

build-fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMS_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$$//')

run: build
	@bash scripts/run.sh

demo: build
	@bash scripts/demo.sh

test: build build-asan build-fuzz
	@bash scripts/test.sh

bench: build
	@bash bench/run.sh

bench-kafka: build
	@BUILD=$(BUILD) bash bench/kafka.sh

fuzz: build-fuzz
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} bash scripts/fuzz.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

docs: build
	@$(BUILD)/metasync config --markdown > docs/config.md

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
