// The root layout every Next.js app router app has. There is no next.config: nothing is configured for the package.
export const metadata = { title: 'wasm-token-manager: Next.js app' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <head><link rel="icon" href="data:," /></head>
      <body>{children}</body>
    </html>
  );
}
