#!/usr/bin/env python3
"""How many messages/s moto itself moves end to end, with nothing of ours involved: four
boto3 senders (SendMessage, or SendMessageBatch with `batch`), two consumers
(ReceiveMessage of 10, then DeleteMessageBatch). The order pipeline through moto cannot be
faster than this. Run it with the tools' Python:

    ~/.cache/bookshelf/venv/bin/python scripts/moto-ceiling.py [MESSAGES] [batch]
"""
import os, socket, subprocess, sys, threading, time

import boto3

s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()
V=os.path.join(os.environ.get("BOOKSHELF_TOOLS_VENV", os.path.expanduser("~/.cache/bookshelf/venv")), "bin")
p=subprocess.Popen([V+"/moto_server","-H","127.0.0.1","-p",str(PORT)],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(2)
N=int(sys.argv[1]) if len(sys.argv)>1 else 600
BATCH=sys.argv[2]=="batch" if len(sys.argv)>2 else False
try:
    mk=lambda: boto3.client("sqs",endpoint_url=f"http://127.0.0.1:{PORT}",region_name="eu-west-1",aws_access_key_id="x",aws_secret_access_key="x")
    q=mk().create_queue(QueueName="t")["QueueUrl"]
    body='{"orderId":"0b7c7d2e-2f0c-4a57-9b43-0d4b5f0fb6a1"}'
    done=[0]
    def consume():
        c=mk()
        while done[0] < N:
            m=c.receive_message(QueueUrl=q,MaxNumberOfMessages=10,WaitTimeSeconds=1).get("Messages",[])
            if m:
                c.delete_message_batch(QueueUrl=q,Entries=[{"Id":str(i),"ReceiptHandle":x["ReceiptHandle"]} for i,x in enumerate(m)])
                done[0]+=len(m)
    def produce(n):
        c=mk()
        if BATCH:
            for _ in range(n//10): c.send_message_batch(QueueUrl=q,Entries=[{"Id":str(j),"MessageBody":body} for j in range(10)])
        else:
            for _ in range(n): c.send_message(QueueUrl=q,MessageBody=body)
    t=time.time()
    cs=[threading.Thread(target=consume) for _ in range(2)]
    ps=[threading.Thread(target=produce,args=(N//4,)) for _ in range(4)]
    for x in cs+ps: x.start()
    for x in ps+cs: x.join()
    d=time.time()-t
    print(f"{'batched sends' if BATCH else 'one send per message'}: {N/d:.0f} messages/s end to end")
finally: p.terminate()
