// @atoll/multi-module — module resolution inside a package.
//
// Files: main.js (entry) → static ./lib/math.js (which imports ./constants.js beside it, i.e.
//        lib/constants.js), a JSON import of ./data.json (`with { type: "json" }`), and a dynamic
//        import("./lib/lazy.js") (which imports ./math.js again and uses top-level await).
// Input:  {} (ignored)
// Output (always exactly):
//   { "sum": 5, "product": 20, "circle_area": 12.56,
//     "data_name": "multi-module fixture", "data_items": ["alpha", "beta", "gamma"],
//     "lazy_message": "lazy module loaded", "lazy_ready": "ready", "lazy_square": 49,
//     "same_math_instance": true, "math_evaluations": 1 }
//   same_math_instance/math_evaluations show that lib/math.js, imported from two modules, is
//   one module instance evaluated once.
// Permissions: none.

import { add, mul, circleArea, instanceToken, evaluations } from "./lib/math.js";
import data from "./data.json" with { type: "json" };

export default async (_input, _ctx) => {
  const lazy = await import("./lib/lazy.js");
  return {
    sum: add(2, 3),
    product: mul(4, 5),
    circle_area: circleArea(2),
    data_name: data.name,
    data_items: data.items,
    lazy_message: lazy.message,
    lazy_ready: lazy.ready,
    lazy_square: lazy.square(7),
    same_math_instance: lazy.mathToken === instanceToken,
    math_evaluations: evaluations(),
  };
};
