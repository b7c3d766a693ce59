/** Vite's `?raw` imports: a file's text, as the tests read the bundled sample data. */
declare module "*?raw" {
  const text: string;
  export default text;
}
