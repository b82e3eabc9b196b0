/** The path of src/generated/openapi.ts. */
export declare const OUTPUT: string;
/** The TypeScript source for an OpenAPI document (an object, as parsed from JSON). */
export declare function render(document: unknown): Promise<string>;
/** Reads a document from a file path or an http(s) URL. */
export declare function load(source: string): Promise<unknown>;
