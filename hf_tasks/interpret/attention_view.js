// Attention views drawn as SVG by this script alone: no libraries, nothing fetched, so a page works
// offline and from a file. The page holds its data as JSON in <script id="attention-data">.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("attention-data").textContent);
  const root = document.getElementById("attention-view");
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
  const tokenCount = data.tokens.length;
  const ranges = pairRanges();

  // Which query tokens (left) attend to which key tokens (right): every pair, or across sentences.
  function pairRanges() {
    const all = {"All": [[0, tokenCount], [0, tokenCount]]};
    const b = data.sentence_b_start;
    if (b === null || b === undefined) return all;
    all["Sentence A -> Sentence A"] = [[0, b], [0, b]];
    all["Sentence B -> Sentence B"] = [[b, tokenCount], [b, tokenCount]];
    all["Sentence A -> Sentence B"] = [[0, b], [b, tokenCount]];
    all["Sentence B -> Sentence A"] = [[b, tokenCount], [0, b]];
    return all;
  }

  function svgElement(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function htmlElement(name, text, parent) {
    const node = document.createElement(name);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function choice(label, values, onChange, parent) {
    const wrapper = htmlElement("label", label + " ", parent);
    const menu = htmlElement("select", undefined, wrapper);
    values.forEach(function (value, index) {
      const option = htmlElement("option", String(value), menu);
      option.value = String(index);
    });
    menu.addEventListener("change", function () { onChange(Number(menu.value)); });
    return menu;
  }

  // One panel: query tokens on the left, key tokens on the right, a line per (query, key, head)
  // whose opacity is the attention weight. `focus` keeps only the lines of one token.
  function drawPanel(svg, layer, heads, range, focus, withText) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const rowHeight = withText ? 18 : 4;
    const textWidth = withText ? 110 : 0;
    const gap = withText ? 160 : 40;
    const [[queryStart, queryEnd], [keyStart, keyEnd]] = range;
    const rows = Math.max(queryEnd - queryStart, keyEnd - keyStart);
    svg.setAttribute("width", 2 * textWidth + gap + 10);
    svg.setAttribute("height", rows * rowHeight + 10);
    const left = textWidth + 5, right = textWidth + gap + 5;
    const y = function (position) { return 5 + (position + 0.5) * rowHeight; };
    heads.forEach(function (head) {
      const weights = data.attentions[layer][head];
      const color = COLORS[data.heads[layer][head] % COLORS.length];
      for (let query = queryStart; query < queryEnd; query++) {
        for (let key = keyStart; key < keyEnd; key++) {
          const weight = weights[query][key];
          if (weight < 0.01) continue;
          if (focus && !((focus.side === "query" && focus.index === query) ||
                         (focus.side === "key" && focus.index === key))) continue;
          svgElement("line", {x1: left, y1: y(query - queryStart), x2: right, y2: y(key - keyStart),
                              stroke: color, "stroke-width": withText ? 2 : 1,
                              "stroke-opacity": Math.min(1, weight)}, svg);
        }
      }
    });
    if (!withText) return;
    const label = function (index, x, anchor, side, position) {
      const text = svgElement("text", {x: x, y: y(position) + 4, "text-anchor": anchor, "font-size": 12,
                                       "font-family": "sans-serif", class: "token"}, svg);
      text.textContent = data.tokens[index];
      text.addEventListener("mouseenter", function () {
        drawPanel(svg, layer, heads, range, {side: side, index: index}, true);
      });
      text.addEventListener("mouseleave", function () { drawPanel(svg, layer, heads, range, null, true); });
    };
    for (let query = queryStart; query < queryEnd; query++) label(query, left - 5, "end", "query", query - queryStart);
    for (let key = keyStart; key < keyEnd; key++) label(key, right + 5, "start", "key", key - keyStart);
  }

  function headView() {
    const controls = htmlElement("div", undefined, root);
    const legend = htmlElement("div", undefined, root);
    const svg = svgElement("svg", {class: "panel"}, root);
    let layer = 0, range = ranges["All"], shown = new Set(data.heads[0].map(function (_, index) { return index; }));
    const redraw = function () { drawPanel(svg, layer, Array.from(shown).sort(), range, null, true); };
    const fillLegend = function () {
      while (legend.firstChild) legend.removeChild(legend.firstChild);
      data.heads[layer].forEach(function (original, index) {
        const swatch = htmlElement("span", "head " + original, legend);
        swatch.className = "swatch";
        swatch.style.background = COLORS[original % COLORS.length];
        swatch.style.opacity = shown.has(index) ? 1 : 0.3;
        swatch.addEventListener("click", function () {
          if (shown.has(index)) shown.delete(index); else shown.add(index);
          fillLegend();
          redraw();
        });
      });
    };
    choice("Layer", data.layers, function (index) {
      layer = index;
      shown = new Set(data.heads[layer].map(function (_, head) { return head; }));
      fillLegend();
      redraw();
    }, controls);
    if (Object.keys(ranges).length > 1) {
      const names = Object.keys(ranges);
      choice("Attention", names, function (index) { range = ranges[names[index]]; redraw(); }, controls);
    }
    htmlElement("p", "Click a head to show or hide it; point at a token to see only its lines.", controls);
    fillLegend();
    redraw();
  }

  function modelView() {
    const controls = htmlElement("div", undefined, root);
    const detail = htmlElement("div", undefined, root);
    const grid = htmlElement("table", undefined, root);
    let range = ranges["All"];
    const thumbnails = [];
    const showDetail = function (layer, head) {
      while (detail.firstChild) detail.removeChild(detail.firstChild);
      htmlElement("h4", "layer " + data.layers[layer] + " head " + data.heads[layer][head], detail);
      drawPanel(svgElement("svg", {class: "panel"}, detail), layer, [head], range, null, true);
    };
    const width = Math.max.apply(null, data.heads.map(function (heads) { return Math.max.apply(null, heads) + 1; }));
    data.layers.forEach(function (layerNumber, layer) {
      const row = htmlElement("tr", undefined, grid);
      htmlElement("th", "layer " + layerNumber, row);
      for (let original = 0; original < width; original++) {
        const cell = htmlElement("td", undefined, row);
        const head = data.heads[layer].indexOf(original);
        if (head < 0) { cell.textContent = "pruned"; cell.className = "pruned"; continue; }
        const svg = svgElement("svg", {class: "thumbnail"}, cell);
        svg.addEventListener("click", function () { showDetail(layer, head); });
        thumbnails.push([svg, layer, head]);
      }
    });
    const redraw = function () {
      thumbnails.forEach(function (entry) { drawPanel(entry[0], entry[1], [entry[2]], range, null, false); });
    };
    if (Object.keys(ranges).length > 1) {
      const names = Object.keys(ranges);
      choice("Attention", names, function (index) { range = ranges[names[index]]; redraw(); }, controls);
    }
    htmlElement("p", "Rows are layers, columns heads; click a panel to see it with its tokens.", controls);
    redraw();
  }

  if (data.view === "head") headView(); else modelView();
})();
