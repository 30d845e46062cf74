"""The Jupyter project's kernel conformance suite (Debian python3-jupyter-kernel-test) run against the m1 kernel.

Run by test/kernel-conformance.test.ts with JUPYTER_PATH pointing at kernel/jupyter. Every test of KernelTests is
enabled except test_pager: a TypeScript cell has no help syntax that pages, so the kernel sends no page payloads.
"""
import unittest

import jupyter_kernel_test

# The first cell waits for the TypeScript tooling that loads in the background after kernel_info.
jupyter_kernel_test.TIMEOUT = 60


class M1KernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "m1"
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world");'
    code_stderr = 'console.error("to stderr");'
    code_generate_error = 'throw new Error("expected by the conformance test");'
    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": '"con" + "formance"', "result": "'conformance'"},
        {"code": "[1, 2].map((x) => x * 10)", "result": "[ 10, 20 ]"},
    ]
    code_display_data = [
        {"code": "display(42);", "mime": "text/plain"},
        {"code": "display({ [Symbol.for('Jupyter.display')]: () => ({ 'text/html': '<b>x</b>', 'text/plain': 'x' }) });", "mime": "text/html"},
    ]
    code_clear_output = 'import { clearOutput } from "m1-workbench/kernel";\nclearOutput();'
    code_inspect_sample = "Math.max"
    completion_samples = [{"text": "Math.flo", "matches": {"floor"}}]
    complete_code_samples = ["1 + 2", "const x = 1;", "function f() {\n  return 1;\n}"]
    incomplete_code_samples = ["function f() {", "const a = [1, 2,", "if (true) {\n  console.log(1);"]
    invalid_code_samples = [")(", "1 +* 2;", "}{"]
    code_history_pattern = "1 +*"
    supported_history_operations = ("tail", "range", "search")


if __name__ == "__main__":
    unittest.main(verbosity=2)
