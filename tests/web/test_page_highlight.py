"""The page's own highlighter and archive reader, run in the browser they ship to."""

from __future__ import annotations

from playwright.sync_api import expect

SAMPLES = {
    "python": ('@dataclass\ndef f(x: int) -> str:\n    """doc "q" """\n    s = f"{x}\\n" + \'it\\\'s\'  # note\n'
               "    return None if x > 0x1F else str(1.5e3)\n"),
    "shell": 'echo "$HOME ${1:-x}" \'$no\' # comment\nn=$#; if [ "$n" -gt 0 ]; then exit 1; fi\n',
    "c": '#include <stdio.h>\nint main(void) { /* block\n */ printf("%d\\n", 42); return 0; } // end\n',
    "cpp": 'std::vector<int> v{1, 2}; auto s = std::string("x"); // c++\n',
    "javascript": "const t = `a ${b}`; let r = /x/; function f() { return null; }\n",
    "go": 'package main\nimport "fmt"\nfunc main() { fmt.Println(`raw`, 3.14, nil) }\n',
    "rust": "fn main<'a>(x: &'a str) { let c = 'x'; println!(\"{}\", x); } #[derive(Debug)]\n",
    "java": 'public class Main { public static void main(String[] a) { System.out.println("hi" + 1L); } }\n',
}


async def test_tokens_join_back_to_the_text_and_name_the_parts(make_server, browser):
    server = await make_server()

    def scenario(page, watch, url):
        page.goto(url)
        expect(page.locator("#health")).to_have_text("● ok")
        return page.evaluate("""async (samples) => {
            const {tokenize, languageOf, highlightAnswer} = await import('/assets/js/highlight.js');
            const out = {};
            for (const [lang, code] of Object.entries(samples)) {
                const tokens = tokenize(code, lang);
                out[lang] = {
                    joined: tokens.map(([, t]) => t).join('') === code,
                    kinds: tokens.filter(([k]) => k).map(([k, t]) => k + ':' + t),
                };
            }
            out.names = ['main.py', 'run.sh', 'x.h', 'a.cc', 'app.mjs', 'main.go', 'lib.rs', 'Main.java',
                         'python main.py', 'Makefile', ''].map(languageOf);
            const answer = 'Text <b>\\n```python main.py\\nprint(1)\\n```\\nmore\\n```sh\\necho $X';
            const frag = highlightAnswer(answer, 'python');
            const div = document.createElement('div');
            div.append(frag);
            out.answer = [div.textContent === answer, div.querySelectorAll('b').length,
                          [...div.querySelectorAll('span')].map((s) => s.className + ':' + s.textContent)];
            return out;
        }""", SAMPLES)

    out = await browser.run(scenario, server.url)
    for lang in SAMPLES:
        assert out[lang]["joined"], lang
    k = {lang: set(out[lang]["kinds"]) for lang in SAMPLES}
    assert {"meta:@dataclass", "keyword:def", "type:int", "string:\"\"\"doc \"q\" \"\"\"", "comment:# note",
            "literal:None", "number:0x1F", "number:1.5e3", "type:str"} <= k["python"]
    assert "string:'it\\'s'" in k["python"]
    assert {"builtin:echo", "string:'$no'", "comment:# comment", "variable:$#", "keyword:if", "keyword:fi"} <= k["shell"]
    assert [x for x in out["shell"]["kinds"] if x.startswith("comment:")] == ["comment:# comment"]  # not $#
    assert {"meta:#include", "type:int", "comment:/* block\n */", "builtin:printf", "number:42", "comment:// end"} <= k["c"]
    assert {"keyword:const", "string:`a ${b}`", "literal:null", "keyword:function"} <= k["javascript"]
    assert {"keyword:package", "string:`raw`", "number:3.14", "literal:nil", "keyword:func"} <= k["go"]
    assert {"keyword:fn", "type:'a", "string:'x'", "builtin:println!", "meta:#[derive(Debug)]"} <= k["rust"]
    assert {"keyword:public", "type:String", "builtin:System", "number:1L"} <= k["java"]
    assert out["names"] == ["python", "shell", "c", "cpp", "javascript", "go", "rust", "java", "python", None, None]
    same, bold, spans = out["answer"]
    assert same and bold == 0
    assert "tok-builtin:print" in spans and "tok-variable:$X" in spans and "tok-prose:Text <b>\n" in spans


async def test_files_come_from_a_tar_when_the_job_has_no_zip(make_server, browser):
    server = await make_server()

    def scenario(page, watch, url):
        page.goto(url)
        page.get_by_label("Prompt").fill("squares, as a tarball")
        page.locator("details.more summary").click()
        page.get_by_label("zip").uncheck()
        page.get_by_label("tar.gz").check()
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("#final-state")
        expect(page.get_by_role("tab", name="main.py")).to_have_attribute("aria-selected", "true")
        links = page.locator("#downloads a").all_inner_texts()
        return page.inner_text("#code"), links

    code, links = await browser.run(scenario, server.url)
    assert "print(n * n)" in code
    assert [link.split()[:2] for link in links] == [["Download", "tar.gz"]]
