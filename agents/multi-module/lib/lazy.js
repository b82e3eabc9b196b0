// Loaded only through a dynamic import() from ../main.js; uses top-level await.
import { mul, instanceToken } from "./math.js";

export const ready = await Promise.resolve("ready");
export const message = "lazy module loaded";
export const mathToken = instanceToken;
export const square = (n) => mul(n, n);
