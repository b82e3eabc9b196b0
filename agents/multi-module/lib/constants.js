// Imported by ./math.js with a specifier relative to lib/, not to the package root.
export const PI_ROUGH = 3.14;
