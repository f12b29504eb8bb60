// A server component page (prerendered at `next build`) that renders the client component.
import Consumer from './consumer.js';

export default function Page() {
  return (
    <main>
      <h1>next app</h1>
      <Consumer />
    </main>
  );
}
