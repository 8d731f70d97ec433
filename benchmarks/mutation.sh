#!/usr/bin/env bash
# Mutation testing of the pure core (breaker.py, selection.py, restart.py, _errors.py,
# outcomes.py), then the score per module. Run it before landing a change to the pure core; it is not
# part of CI (about 12 to 16 minutes on 2 cores, longer while the machine is busy).
#
#   benchmarks/mutation.sh            # a fresh run: mutants/ is made anew
#   benchmarks/mutation.sh --keep     # reuse mutants/: re-tests only changed functions
#   benchmarks/mutation.sh --score    # only print the score of the last run
#
# Needs the `mutation` extra (pip install -e '.[mutation]'), in the virtual environment
# $VIRTUAL_ENV, or .venv when none is active. MUTATION_CHILDREN sets how many mutants run
# at once (default 2). What is mutated and which tests run is [tool.mutmut] in
# pyproject.toml; the score, the equivalent mutants and how to read them are in
# benchmarks/MUTATION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${VIRTUAL_ENV:-.venv}/bin"
children="${MUTATION_CHILDREN:-2}"

case "${1:-}" in
    --score) exec "$bin/python" benchmarks/mutation_score.py ;;
    --keep) ;;
    "") rm -rf mutants ;;
    *) echo "usage: $0 [--keep | --score]" >&2; exit 2 ;;
esac

mkdir -p mutants
git describe --always --dirty > mutants/commit.txt 2>/dev/null || rm -f mutants/commit.txt
log=mutants/run.log
echo "+ mutmut run --max-children $children (its output: $log)"
start=$SECONDS
if ! "$bin/mutmut" run --max-children "$children" > "$log" 2>&1; then
    tail -c 4000 "$log" >&2
    echo "mutmut run failed" >&2
    exit 1
fi
echo "+ done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
exec "$bin/python" benchmarks/mutation_score.py
