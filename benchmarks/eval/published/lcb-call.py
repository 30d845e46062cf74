# Calls a LeetCode-style solution for one LiveCodeBench functional test inside the sandbox: solution.py defines
# class Solution; argv[1] names the method and argv[2] a marker; stdin holds one JSON argument per line. Prints
# the marker, then the result as JSON, on the last line.
import json
import sys

method, marker = sys.argv[1], sys.argv[2]
args = [json.loads(line) for line in sys.stdin.read().split("\n") if line.strip()]
scope = {"__name__": "solution"}
with open("solution.py") as f:
    exec(compile(f.read(), "solution.py", "exec"), scope)
result = getattr(scope["Solution"](), method)(*args)
print("\n" + marker + json.dumps(result))
