"""Jobs in every language: the model's answer (replayed) is packaged, compiled when the
language is, run in that language's sandbox and judged; a compile error fails the job."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ANSWERS = {
    "python": "```python\nprint('hi from python')\n```",
    "shell": "Run it with sh:\n```bash\necho \"hi from shell\"\n```",
    "c": "```c\n#include <stdio.h>\nint main(void) { puts(\"hi from c\"); return 0; }\n```",
    "cpp": "```cpp main.cpp\n#include <iostream>\nint main() { std::cout << \"hi from cpp\\n\"; }\n```",
    "javascript": "```js\nconsole.log('hi from javascript');\n```",
    "go": "```go\npackage main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi from go\") }\n```",
    "rust": "Here:\n```rust\nfn main() {\n    println!(\"hi from rust\");\n}\n```",
    "java": "```java Main.java\npublic class Main {\n  public static void main(String[] a) {\n"
            "    System.out.println(\"hi from java\");\n  }\n}\n```",
}
ENTRY = {"python": "main.py", "shell": "main.sh", "c": "main.c", "cpp": "main.cpp", "javascript": "main.js",
         "go": "main.go", "rust": "main.rs", "java": "Main.java"}


@pytest.mark.parametrize("language", list(ANSWERS))
async def test_a_job_in_each_language(make_server, language_images, language):
    server = await make_server(text=ANSWERS[language])
    r = await server.client.post("/api/generate", json={"prompt": "say hi", "language": language, "wait": True})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["state"] == "COMPLETE", doc["error"]
    ex = doc["execution"]
    assert (ex["verdict"], ex["stdout"]) == ("accepted", f"hi from {language}\n"), ex
    assert [f["path"] for f in doc["files"]] == [ENTRY[language]]
    compiled = language in ("c", "cpp", "go", "rust", "java")
    assert (ex["compile"] is not None) == compiled
    if compiled:
        assert ex["compile"]["exit_code"] == 0


async def test_a_program_that_does_not_compile_fails_the_job(make_server, language_images):
    server = await make_server(text="```c\nint main( {\n```")
    r = await server.client.post("/api/generate", json={"prompt": "x", "language": "c", "wait": True})
    doc = r.json()
    assert doc["state"] == "FAILED" and doc["error"]["code"] == "program_failed"
    assert "did not compile" in doc["error"]["message"]
    ex = doc["execution"]
    assert ex["verdict"] == "compile_error" and "error" in ex["compile"]["stderr"] and ex["stderr"]
