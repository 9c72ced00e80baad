// Entry point of the report runtime (inlined into `interplab tour` reports): render the page's widgets.

import { renderPage } from "./runtime";

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => void renderPage());
else void renderPage();
