// Run inside a page through the DevTools protocol by the browser tests: every visible
// control labelled, every button and link named, the language set, and WCAG AA contrast
// (4.5:1, or 3:1 for large text) for every piece of visible text.
() => {
  const problems = [];
  const visible = (node) => !!(node.offsetWidth || node.offsetHeight || node.getClientRects().length);
  if (!document.documentElement.lang) problems.push("the page has no lang");
  for (const control of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (visible(control) && control.labels.length === 0 && !control.getAttribute("aria-label"))
      problems.push(`unlabelled ${control.tagName.toLowerCase()}#${control.id}`);
  }
  for (const node of document.querySelectorAll("button, a, [role=slider]")) {
    const name = (node.getAttribute("aria-label") || node.textContent || "").trim();
    if (visible(node) && !name) problems.push(`nameless ${node.tagName.toLowerCase()}#${node.id}`);
  }
  const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = (node) => {
    for (let at = node; at; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] > 0.9)) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const node of document.querySelectorAll("body *")) {
    const own = [...node.childNodes].some((child) => child.nodeType === 3 && child.textContent.trim());
    if (!own || !visible(node)) continue;
    const style = getComputedStyle(node);
    const [fore, back] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(node))];
    const ratio = (Math.max(fore, back) + 0.05) / (Math.min(fore, back) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)} for "${node.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}
