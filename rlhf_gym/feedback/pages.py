"""The labelling app's pages: Jinja2 templates with autoescaping on, so model text is always shown as text.

The only script is a short inline one (keyboard shortcuts) that carries the response's CSP nonce; the
Content-Security-Policy the app sends refuses every other script, so even an escaping bug could not run
an injected ``<script>``.
"""

from __future__ import annotations

from typing import Any

import jinja2

__all__ = ["render", "GUIDELINES"]

GUIDELINES = """Read the prompt, then its continuations. Pick the continuation that is the better answer to the prompt:
more helpful, more correct, better written. Choose "tie" when neither is better, "both bad" when neither is acceptable.
For a ranking, pick the continuations from best to worst. Optionally say why, or write a better answer.
Labels are saved the moment you submit them; you can revisit and change your own labels under "my labels"."""

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · rlhf-gym label</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:70rem;margin:0 auto;padding:0 1rem 2rem;color:#222}
header{display:flex;gap:1.5rem;align-items:baseline;border-bottom:1px solid #ccc;padding:.6rem 0;margin-bottom:1rem}
header .me{margin-left:auto;color:#555} a{color:#1a5fb4}
pre{white-space:pre-wrap;word-wrap:break-word;font:inherit;margin:0}
.prompt{background:#f4f4f4;padding:.8rem;border-radius:6px;margin-bottom:1rem}
.cands{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem}
.cand{border:1px solid #bbb;border-radius:6px;padding:.8rem}
.cand h3{margin:0 0 .5rem;font-size:1rem}
.choices{margin:1rem 0;display:flex;gap:.6rem;flex-wrap:wrap}
button{font-size:1rem;padding:.5rem 1rem;cursor:pointer}
kbd{border:1px solid #999;border-radius:3px;padding:0 .3rem;font-size:.8rem;background:#fafafa}
textarea{width:100%;box-sizing:border-box;min-height:4rem;font:inherit}
.progress{color:#555} .error{color:#b00020;font-weight:600}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
</style></head><body>
<header><strong>rlhf-gym label</strong>
{% if me %}<a href="/">next</a><a href="/labels">my labels</a><a href="/guidelines">guidelines</a>
<span class="me">{{ me }} · <a href="/logout">log out</a></span>{% endif %}</header>
{% block body %}{% endblock %}
</body></html>"""

_LOGIN = """{% extends "base" %}{% block body %}
<h1>Log in</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
<form method="post" action="/login"><label>Annotator token <input type="password" name="token" id="token"
 autofocus size="40"></label> <button type="submit" id="login">Log in</button></form>
<p>Ask the admin for a token (<code>rlhf-gym label annotators add NAME --db DB</code>).</p>
{% endblock %}"""

_ITEM = """{% extends "base" %}{% block body %}
<p class="progress" id="progress">You have labelled {{ progress.mine }} · {{ progress.left }} left for you
 · {{ progress.total }} items, each shown to {{ progress.overlap }} annotator{{ '' if progress.overlap == 1 else 's' }}</p>
{% if previous %}<p class="progress">You labelled this item before; submitting replaces your label.</p>{% endif %}
<details><summary>Guidelines</summary><pre>{{ guidelines }}</pre></details>
<h2>Prompt</h2><div class="prompt"><pre id="prompt">{{ item.prompt }}</pre></div>
<form method="post" action="/label" id="label-form">
<input type="hidden" name="item_id" value="{{ item_id }}"><input type="hidden" name="shown" value="{{ shown }}">
<div class="cands">{% for text in item.candidates %}
<div class="cand"><h3>{{ names[loop.index0] }}{% if ranking %} <button type="button" class="pick" id="pick-{{ loop.index }}"
 data-n="{{ loop.index }}">pick next <kbd>{{ loop.index }}</kbd></button>{% endif %}</h3>
<pre id="cand-{{ loop.index }}">{{ text }}</pre></div>{% endfor %}</div>
{% if ranking %}
<p><label>Order, best first (candidate numbers, comma-separated): <input name="ranking" id="ranking"
 value="{{ previous_ranking }}" size="20"></label> <kbd>1</kbd>–<kbd>{{ item.candidates|length }}</kbd> add ·
 <kbd>Backspace</kbd> undo · <kbd>Enter</kbd> submit</p>
<div class="choices"><button type="submit" id="submit-ranking">Submit ranking <kbd>Enter</kbd></button></div>
{% else %}
<div class="choices">
<button type="submit" name="choice" value="a" id="choice-a">A is better <kbd>A</kbd></button>
<button type="submit" name="choice" value="b" id="choice-b">B is better <kbd>B</kbd></button>
<button type="submit" name="choice" value="tie" id="choice-tie">Tie <kbd>T</kbd></button>
<button type="submit" name="choice" value="both_bad" id="choice-both_bad">Both bad <kbd>X</kbd></button>
</div>{% endif %}
<p><label>Why (optional) <kbd>F</kbd><textarea name="feedback" id="feedback">{{ previous.feedback if previous else '' }}</textarea></label></p>
<p><label>A better answer (optional) <kbd>E</kbd><textarea name="edited" id="edited">{{ previous.edited if previous else '' }}</textarea></label></p>
</form>
<script nonce="{{ nonce }}">
(function () {
  var ranking = {{ 'true' if ranking else 'false' }}, k = {{ item.candidates|length }};
  var keys = {"a": "a", "1": "a", "b": "b", "2": "b", "t": "tie", "x": "both_bad"};
  var field = document.getElementById("ranking");
  function add(n) {
    var order = field.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (order.indexOf(String(n)) < 0 && order.length < k) { order.push(String(n)); }
    field.value = order.join(",");
  }
  document.querySelectorAll(".pick").forEach(function (b) {
    b.addEventListener("click", function () { add(b.dataset.n); });
  });
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.key === "Escape") { t.blur(); return; }
    if (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "hidden") || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var key = e.key.toLowerCase();
    if (key === "f" || key === "e") { e.preventDefault(); document.getElementById(key === "f" ? "feedback" : "edited").focus(); return; }
    if (ranking) {
      var n = parseInt(key, 10);
      if (n >= 1 && n <= k) { e.preventDefault(); add(n); }
      else if (key === "backspace") { e.preventDefault(); field.value = field.value.split(",").slice(0, -1).join(","); }
      else if (key === "enter") { e.preventDefault(); document.getElementById("submit-ranking").click(); }
    } else if (keys[key]) { e.preventDefault(); document.getElementById("choice-" + keys[key]).click(); }
  });
})();
</script>
{% endblock %}"""

_DONE = """{% extends "base" %}{% block body %}
<h1>Nothing left to label</h1><p id="progress">You have labelled {{ progress.mine }} item{{ '' if progress.mine == 1 else 's' }}.
Thank you! You can review or change them under <a href="/labels">my labels</a>.</p>
{% endblock %}"""

_LABELS = """{% extends "base" %}{% block body %}
<h1>My labels ({{ rows|length }})</h1><p><a href="/labels.jsonl">download as JSONL</a></p>
<table id="labels"><tr><th>item</th><th>prompt</th><th>answer</th><th>feedback</th><th></th></tr>
{% for r in rows %}<tr><td>{{ r.item_id }}</td><td><pre>{{ r.prompt[:120] }}</pre></td><td>{{ r.answer }}</td>
<td><pre>{{ r.feedback[:120] }}</pre></td><td><a href="/item/{{ r.item_id }}">change</a></td></tr>{% endfor %}
</table>{% endblock %}"""

_GUIDE = """{% extends "base" %}{% block body %}<h1>Guidelines</h1><pre id="guidelines">{{ guidelines }}</pre>
<h2>Keyboard</h2><p><kbd>A</kbd>/<kbd>1</kbd> A is better · <kbd>B</kbd>/<kbd>2</kbd> B is better · <kbd>T</kbd> tie ·
<kbd>X</kbd> both bad · <kbd>F</kbd> write feedback · <kbd>E</kbd> write a better answer · <kbd>Esc</kbd> leave a text box.
Rankings: <kbd>1</kbd>…<kbd>9</kbd> pick the next best, <kbd>Backspace</kbd> undo, <kbd>Enter</kbd> submit.</p>
{% endblock %}"""

_MESSAGE = """{% extends "base" %}{% block body %}<h1>{{ title }}</h1><p class="error" id="message">{{ message }}</p>
<p><a href="/">back</a></p>{% endblock %}"""

_ENV = jinja2.Environment(
    loader=jinja2.DictLoader({"base": _BASE, "login": _LOGIN, "item": _ITEM, "done": _DONE, "labels": _LABELS,
                              "guidelines": _GUIDE, "message": _MESSAGE}),
    autoescape=True, undefined=jinja2.StrictUndefined)


def render(name: str, **context: Any) -> str:
    """The page ``name`` rendered with ``context`` (every value escaped unless marked safe)."""
    context.setdefault("me", None)
    context.setdefault("title", name)
    return _ENV.get_template(name).render(**context)
