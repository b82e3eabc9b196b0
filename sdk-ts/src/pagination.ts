// Lists: `{ data, next_cursor }` pages fetched with `?limit=&cursor=`. A list call is
// both a promise of its first page and an async iterable of every item on every page.

import type { APIPromise, WithResponse } from "./core.js";

/** The shape of every list answer. */
export interface ListAnswer<T> {
  data: T[];
  next_cursor?: string | null;
}

/** One page of a list, and the way to the next. */
export class Page<T> implements AsyncIterable<T> {
  readonly data: T[];
  /** The cursor of the next page; null on the last page. */
  readonly next_cursor: string | null;
  /** The HTTP response this page came from. */
  readonly response: Response;
  readonly #fetchPage: (cursor: string) => APIPromise<ListAnswer<T>>;

  constructor(answer: WithResponse<ListAnswer<T>>, fetchPage: (cursor: string) => APIPromise<ListAnswer<T>>) {
    this.data = Array.isArray(answer.data?.data) ? answer.data.data : [];
    this.next_cursor = answer.data?.next_cursor ?? null;
    this.response = answer.response;
    this.#fetchPage = fetchPage;
  }

  hasNextPage(): boolean {
    return this.next_cursor !== null && this.next_cursor !== "";
  }

  /** The next page; throws on the last page (check {@link hasNextPage} first). */
  async getNextPage(): Promise<Page<T>> {
    if (!this.hasNextPage()) throw new Error("this is the last page");
    const answer = await this.#fetchPage(this.next_cursor as string).withResponse();
    return new Page(answer, this.#fetchPage);
  }

  /** This page and every page after it. */
  async *iterPages(): AsyncGenerator<Page<T>, void, undefined> {
    let page: Page<T> = this;
    yield page;
    while (page.hasNextPage()) {
      page = await page.getNextPage();
      yield page;
    }
  }

  /** Every item of this page and of the pages after it. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.iterPages()) {
      yield* page.data;
    }
  }
}

/**
 * A list call: `await` it for the first {@link Page}, or `for await` over it for every
 * item across pages (fetched as the loop reaches them). Nothing is sent until one of
 * the two is used.
 */
export class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  readonly #fetchPage: (cursor: string | undefined) => APIPromise<ListAnswer<T>>;
  #first: Promise<Page<T>> | undefined;

  constructor(fetchPage: (cursor: string | undefined) => APIPromise<ListAnswer<T>>) {
    this.#fetchPage = fetchPage;
  }

  #firstPage(): Promise<Page<T>> {
    this.#first ??= this.#fetchPage(undefined)
      .withResponse()
      .then((answer) => new Page(answer, (cursor) => this.#fetchPage(cursor)));
    return this.#first;
  }

  then<A = Page<T>, B = never>(
    onfulfilled?: ((value: Page<T>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#firstPage().then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<Page<T> | B> {
    return this.then(undefined, onrejected);
  }

  /** Every page, first to last. */
  async *pages(): AsyncGenerator<Page<T>, void, undefined> {
    const first = await this.#firstPage();
    yield* first.iterPages();
  }

  /** Every item of every page, collected (mind long lists). */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.pages()) {
      yield* page.data;
    }
  }
}
