//! The smallest TracimDaemon client: registers, and prints one line per event.
//! Usage: mini_client MASTER_SOCKET OWN_SOCKET   (Ctrl-C to leave cleanly)

use tracim_daemon_sdk::client::{Client, ClientConfig, Inbound};
use tracim_daemon_sdk::protocol::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(master), Some(socket)) = (args.next(), args.next()) else {
        eprintln!("usage: mini_client MASTER_SOCKET OWN_SOCKET");
        std::process::exit(2);
    };
    let (mut client, mut incoming) = Client::start(ClientConfig::new(master, socket)).await?;
    loop {
        tokio::select! {
            inbound = incoming.recv() => match inbound {
                Some(Inbound::Message(delivery)) => {
                    if let Message::TracimEvent(event) = delivery.envelope.message {
                        let author = event.lookup("fields.author.public_name");
                        let author = author.as_ref().and_then(|a| a.scalar_text()).unwrap_or("");
                        println!("{} {} by {author}", event.id(), event.event_type());
                    }
                }
                // Bad input on our socket: say so, and go on with the next message.
                Some(Inbound::Refused(refusal)) => eprintln!("refused: {refusal}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.shutdown().await;
    Ok(())
}
