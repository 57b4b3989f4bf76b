// demo.mjs — the demo page of acmd (GET /demo/) in Debian's chromium, headless, driven by playwright-core; run by
// tests/server/test_demo.c, which starts acmd and reads what this prints.
//   node demo.mjs URL CHROMIUM IMAGE_MODEL IMAGE SPEECH_MODEL WAV MIC_WAV SHOT_DIR
// Prints one JSON line: the label and stats after the image, the stats after the budget slider moved, the final
// transcript of the streamed file, and what the microphone (chromium's fake device playing MIC_WAV) gave, with the
// budget of the chunks after the slider moved mid-stream. Screenshots: SHOT_DIR/demo-image.png, demo-stream.png.
import { chromium } from "playwright-core";

const [url, exe, imodel, image, smodel, wav, micWav, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         `--use-file-for-fake-audio-capture=${micWav}`, "--autoplay-policy=no-user-gesture-required"],
});
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  page.on("pageerror", e => { out.page_errors = (out.page_errors || []).concat(String(e)); });
  await page.goto(url + "/demo/");
  // the image: picked, classified; then the slider re-asks at 0.5 (out.step: where a timeout happened)
  out.step = "image";
  await page.fill("#imodel", imodel);
  await page.setInputFiles("#file", image);
  await page.waitForFunction(() => document.querySelector("#istats").textContent.includes("β applied"), null, { timeout: 20000 });
  out.label = await page.textContent("#label");
  out.top = await page.$$eval("#top tr", r => r.length);
  out.stats_full = await page.textContent("#istats");
  await page.$eval("#ibudget", e => { e.value = "0.5"; e.dispatchEvent(new Event("input")); });
  await page.waitForFunction(() => document.querySelector("#istats").textContent.includes("β applied 0.50"), null, { timeout: 20000 });
  out.stats_half = await page.textContent("#istats");
  out.heat_drawn = await page.$eval("#heat", c => { const d = c.getContext("2d").getImageData(0, 0, 224, 224).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s > 0; });
  await page.screenshot({ path: `${shots}/demo-image.png` });
  // an audio file streamed in real time: its final transcript
  out.step = "file";
  await page.fill("#amodel", smodel);
  await page.setInputFiles("#audiofile", wav);
  await page.waitForFunction(() => !document.querySelector("#stop").disabled, null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector("#stop").disabled, null, { timeout: 60000 }); // closed after end
  out.file_text = (await page.$eval("#transcript", e => e.textContent)).trim();
  // the microphone: partials, then the slider at 0.25 acts on the running stream (configure)
  out.step = "mic";
  await page.click("#mic");
  // #astats is emptied when the stream opens: "chunk β" is then the microphone stream's own first partial
  await page.waitForFunction(() => !document.querySelector("#stop").disabled, null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector("#astats").textContent.includes("chunk β"), null, { timeout: 20000 });
  await page.$eval("#abudget", e => { e.value = "0.25"; e.dispatchEvent(new Event("input")); });
  await page.waitForFunction(() => /chunk β 0\.(2[0-5]|1|0)/.test(document.querySelector("#astats").textContent), null, { timeout: 20000 });
  out.mic_stats = await page.textContent("#astats");
  await page.screenshot({ path: `${shots}/demo-stream.png` });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#stop").disabled, null, { timeout: 20000 });
  out.mic_text = (await page.$eval("#transcript", e => e.textContent)).trim();
  out.step = "done";
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
